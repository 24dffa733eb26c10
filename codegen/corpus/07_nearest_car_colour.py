"""What colour is the nearest car?"""

import toolmesh


def colour_name(rgb):
    r, g, b = rgb[:3]
    if max(r, g, b) - min(r, g, b) < 30:
        if r > 170:
            return "white"
        if r < 70:
            return "black"
        return "grey"
    if r >= g and r >= b:
        return "red"
    if g >= r and g >= b:
        return "green"
    return "blue"


async def solve(image):
    cars = await toolmesh.call("find", image=image, object_name="car")
    if not cars:
        return "there is no car"
    nearest = max(cars, key=lambda c: (c["box"][2] - c["box"][0]) * (c["box"][3] - c["box"][1]))
    average = await toolmesh.call("resize", image=image.crop(nearest["box"]), width=1, height=1)
    rgb = average.getpixel((0, 0))
    return {"colour": colour_name(rgb), "rgb": list(rgb)}
