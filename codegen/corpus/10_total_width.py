"""What is the total width, in pixels, of all people found?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    total = 0
    for person in people:
        grey = await toolmesh.call("greyscale", image=image.crop(person["box"]))
        total += grey.size[0]
    return total
