"""Make a 200-pixel-wide upright thumbnail of the picture turned a quarter turn."""

import toolmesh


async def solve(image):
    turned = await toolmesh.call("rotate", image=image, angle=90)
    width, height = turned.size
    thumb = await toolmesh.call(
        "resize", image=turned, width=200, height=round(200 * height / width)
    )
    return thumb
