"""Describe the patches of every person (grey size) and every car (turned size)."""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car")
    person_sizes = []
    for person in people:
        grey = await toolmesh.call("greyscale", image=image.crop(person["box"]))
        person_sizes.append(grey.size)
    car_sizes = []
    for car in cars:
        turned = await toolmesh.call("rotate", image=image.crop(car["box"]), angle=270)
        car_sizes.append(turned.size)
    return {"people": person_sizes, "cars": car_sizes}
