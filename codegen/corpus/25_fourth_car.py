"""How wide is the fourth car? (There are fewer cars: both programs must raise the same
IndexError.)"""

import toolmesh


async def solve(image):
    cars = await toolmesh.call("find", image=image, object_name="car")
    grey = await toolmesh.call("greyscale", image=image)
    fourth = cars[3]
    return fourth["box"][2] - fourth["box"][0], grey.size
