"""How many people and how many cars are there?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car")
    return {"people": len(people), "cars": len(cars)}
