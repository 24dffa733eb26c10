"""Are more people on the left half of the picture or on the right half?"""

import toolmesh


async def solve(image):
    width, height = image.size
    people = await toolmesh.call("find", image=image, object_name="person")
    left = 0
    right = 0
    for person in people:
        x1, y1, x2, y2 = person["box"]
        if (x1 + x2) / 2 < width / 2:
            left += 1
        else:
            right += 1
    return {"left": left, "right": right, "busier": "left" if left > right else "right"}
