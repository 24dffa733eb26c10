import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car")
    if len(people) > len(cars):
        focus = await toolmesh.call("greyscale", image=image)
        focus = await toolmesh.call("rotate", image=focus, angle=90)
    else:
        focus = await toolmesh.call("rotate", image=image, angle=180)
    small = await toolmesh.call("resize", image=image, width=64, height=48)
    tiny = await toolmesh.call("rotate", image=small, angle=90)
    return focus.size, tiny.size
