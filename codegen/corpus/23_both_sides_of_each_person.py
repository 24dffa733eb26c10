"""Turn each person's patch a quarter turn both ways; do the two sizes agree?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    agree = []
    for person in people:
        patch = image.crop(person["box"])
        left = await toolmesh.call("rotate", image=patch, angle=90)
        right = await toolmesh.call("rotate", image=patch, angle=270)
        agree.append(left.size == right.size)
    return all(agree), len(agree)
