"""How bright is each person, from darkest to brightest?"""

import toolmesh


def brightness(grey_pixel):
    return round(grey_pixel / 255, 2)


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    if not people:
        return "no people found"
    levels = []
    for person in people:
        patch = image.crop(person["box"])
        grey = await toolmesh.call("greyscale", image=patch)
        pixel = await toolmesh.call("resize", image=grey, width=1, height=1)
        levels.append(brightness(pixel.getpixel((0, 0))))
    return sorted(levels)
