"""How many of the people found are uncertain detections (score below 0.5)?"""

import toolmesh


async def solve(image):
    confident = await toolmesh.call("find", image=image, object_name="person", threshold=0.5)
    everyone = await toolmesh.call("find", image=image, object_name="person", threshold=0.3)
    return len(everyone) - len(confident)
