"""Make a grey copy, an upside-down copy, a half-size copy and a PNG of the picture."""

import toolmesh


async def solve(image):
    width, height = image.size
    grey = await toolmesh.call("greyscale", image=image)
    upside_down = await toolmesh.call("rotate", image=image, angle=180)
    half = await toolmesh.call("resize", image=image, width=width // 2, height=height // 2)
    png = await toolmesh.call("convert_format", image=image, format="png")
    return {
        "grey": [grey.mode, *grey.size],
        "upside_down": list(upside_down.size),
        "half": list(half.size),
        "png": png["media_type"],
    }
