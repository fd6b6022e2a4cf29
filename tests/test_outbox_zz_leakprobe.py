import asyncio
async def test_leaks():
    asyncio.create_task(asyncio.sleep(100), name="leaky")
async def test_clean():
    t = asyncio.create_task(asyncio.sleep(0.01)); await t
def test_sync():
    assert asyncio.run(asyncio.sleep(0, result=3)) == 3
