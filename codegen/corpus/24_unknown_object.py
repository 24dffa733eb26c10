"""How many people and unicorns are there? (The detector knows no unicorns: both
programs must fail with the same error.)"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    unicorns = await toolmesh.call("find", image=image, object_name="unicorn")
    return len(people), len(unicorns)
