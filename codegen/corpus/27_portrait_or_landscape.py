"""For each person, turn a standing patch on its side and make a lying one grey;
what shapes come out?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    shapes = []
    for person in people:
        x1, y1, x2, y2 = person["box"]
        patch = image.crop(person["box"])
        if (y2 - y1) > (x2 - x1):
            piece = await toolmesh.call("rotate", image=patch, angle=90)
        else:
            piece = await toolmesh.call("greyscale", image=patch)
        shapes.append([piece.mode, *piece.size])
    return shapes
