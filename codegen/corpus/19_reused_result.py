"""How many people, cars and bicycles are there?"""

import toolmesh


async def solve(image):
    result = await toolmesh.call("find", image=image, object_name="person")
    people = len(result)
    result = await toolmesh.call("find", image=image, object_name="car")
    cars = len(result)
    result = await toolmesh.call("find", image=image, object_name="bicycle")
    bicycles = len(result)
    return {"people": people, "cars": cars, "bicycles": bicycles}
