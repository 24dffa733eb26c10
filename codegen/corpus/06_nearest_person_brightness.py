"""How bright is the nearest person (the one with the largest box), from 0 to 255?"""

import toolmesh


def area(box):
    x1, y1, x2, y2 = box
    return (x2 - x1) * (y2 - y1)


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    nearest = max(people, key=lambda p: area(p["box"]))
    patch = image.crop(nearest["box"])
    grey = await toolmesh.call("greyscale", image=patch)
    pixel = await toolmesh.call("resize", image=grey, width=1, height=1)
    return pixel.getpixel((0, 0))
