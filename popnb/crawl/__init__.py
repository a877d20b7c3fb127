"""popnb.crawl: collect a fresh dataset folder from a Bilibili section (`popnb crawl`).

client (HTTP, rate limit, retries) -> api (endpoints -> records, shape checks) -> crawl (orchestration, resume via
state, writes the dataset folder through popnb.data's validate/write functions).
"""
