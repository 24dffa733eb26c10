"""What size is each person's patch when turned on its side?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    turned = [await toolmesh.call("rotate", image=image.crop(p["box"]), angle=90) for p in people]
    return [t.size for t in turned]
