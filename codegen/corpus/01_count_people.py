"""How many people are in the image?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    return len(people)
