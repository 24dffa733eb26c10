import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    if not people:
        return 0
    total = 0
    for person in people:
        if person["score"] < 0.5:
            continue
        grey = await toolmesh.call("greyscale", image=image.crop(person["box"]))
        print(person["label"], grey.size)
        total += grey.size[0]
    return total, len(await toolmesh.call("find", image=image, object_name="car"))
