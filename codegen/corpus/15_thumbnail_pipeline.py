"""Make a small grey JPEG thumbnail of the picture turned a quarter turn; how many bytes?"""

import toolmesh


async def solve(image):
    grey = await toolmesh.call("greyscale", image=image)
    turned = await toolmesh.call("rotate", image=grey, angle=90)
    small = await toolmesh.call("resize", image=turned, width=96, height=128)
    jpeg = await toolmesh.call("convert_format", image=small, format="jpeg", quality=80)
    return {"media_type": jpeg["media_type"], "bytes": len(jpeg["data"])}
