"""Which file format stores a 160-pixel-wide copy of the picture in the fewest bytes?"""

import toolmesh


async def solve(image):
    small = await toolmesh.call("resize", image=image, width=160, height=120)
    png = await toolmesh.call("convert_format", image=small, format="png")
    jpeg = await toolmesh.call("convert_format", image=small, format="jpeg", quality=85)
    webp = await toolmesh.call("convert_format", image=small, format="webp", quality=85)
    sizes = {"png": len(png["data"]), "jpeg": len(jpeg["data"]), "webp": len(webp["data"])}
    best = min(sizes, key=lambda name: sizes[name])
    return {"smallest": best, "sizes": sizes}
