"""Do four quarter turns give back the same picture, and how many people are in it?"""

import toolmesh


async def solve(image):
    turned = image
    for _ in range(4):
        turned = await toolmesh.call("rotate", image=turned, angle=90)
    people = await toolmesh.call("find", image=image, object_name="person")
    return {"same_size": turned.size == image.size, "people": len(people)}
