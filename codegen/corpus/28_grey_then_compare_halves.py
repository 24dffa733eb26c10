"""Is the left half of the picture brighter than the right half?"""

import toolmesh


async def solve(image):
    width, height = image.size
    grey = await toolmesh.call("greyscale", image=image)
    left = await toolmesh.call(
        "resize", image=grey.crop((0, 0, width // 2, height)), width=1, height=1
    )
    right = await toolmesh.call(
        "resize", image=grey.crop((width // 2, 0, width, height)), width=1, height=1
    )
    return {"left": left.getpixel((0, 0)), "right": right.getpixel((0, 0))}
