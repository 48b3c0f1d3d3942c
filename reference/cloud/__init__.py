"""`shakyo cloud`: train on a rented vast.ai GPU, publish the model to Kaggle, keys that never leak.

plan.py      the plan file (configs/cloud/*.toml), validated one line per error
secrets.py   the Kaggle / Vast / wandb keys found on this machine; redact.py the log filter
vast.py      the few Vast calls, through the official vastai SDK
kaggle.py    the Kaggle calls made here, through the official kaggle CLI
onstart.py   the instance's on-start script and environment; bootstrap.sh what the instance runs
kernel.py    the Kaggle inference notebook for the published model
state.py     .shakyo/cloud/PLAN.json: which instance a plan launched
cli.py       the subcommands
"""
