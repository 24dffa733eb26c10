import toolmesh


async def solve(image):
    turned = image
    for _ in range(4):
        turned = await toolmesh.call("rotate", image=turned, angle=90)
    result = await toolmesh.call("find", image=image, object_name="person")
    people = len(result)
    result = await toolmesh.call("find", image=image, object_name="car")
    return turned.size == image.size, people, len(result)
