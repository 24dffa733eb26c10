"""Are there more people than cars in the picture?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car")
    return {"people": len(people), "cars": len(cars), "more_people": len(people) > len(cars)}
