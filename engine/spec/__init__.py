"""The torch-free catalogue and spec validation: what the shell and the screens may know of the engine.

`catalog` holds the registered names (methods, families, models, tasks, worlds), `params` the
hyperparameter declarations the CLI options and form fields are generated from, `validate` the checks
that turn a raw spec into a normalised one or a SpecError naming its field.
"""
from engine.spec.catalog import (
    ATTACK_KINDS,
    CAPABILITIES,
    DATA_FORMATS,
    DEFAULT_SEED,
    DEVICES,
    FAMILIES,
    KNOWLEDGE_SOURCES,
    METHODS,
    MODELS,
    PEOPLE_WORLDS,
    PULSE_METHODS,
    RECIPES,
    RUN_TASKS,
    SEQUENTIAL_METHODS,
    TASKS,
    WORLD_SEED,
    WORLDS,
    Column,
    data_info,
    data_kind,
    demo_model,
    holdout_columns,
    method_rows,
    shown_columns,
)
from engine.spec.lists import PAPER_SEEDS, parse_methods, parse_seeds
from engine.spec.params import (COMMON_PARAMS, GRANULARITY, GUARDRAILS, LMM_PARAMS, NOT_ON_PEOPLE, REQUESTS, Param,
                                dash)
from engine.spec.validate import (
    DEFAULT_RESUME_MINUTES,
    PULSE_DEFAULT_PARAMS,
    check_deletion,
    check_method_fits,
    format_default_params,
    method_info,
    option_params,
    param_owners,
    people_pool,
    resume_minutes,
    validate,
    validate_pulse,
)

__all__ = [
    "ATTACK_KINDS", "CAPABILITIES", "COMMON_PARAMS", "Column", "DATA_FORMATS", "DEFAULT_SEED", "DEVICES", "FAMILIES", "GRANULARITY", "GUARDRAILS", "KNOWLEDGE_SOURCES", "LMM_PARAMS",
    "METHODS", "MODELS", "NOT_ON_PEOPLE", "PEOPLE_WORLDS", "PULSE_DEFAULT_PARAMS", "PULSE_METHODS", "RECIPES", "REQUESTS", "RUN_TASKS", "SEQUENTIAL_METHODS", "TASKS",
    "WORLD_SEED", "WORLDS", "Param", "check_deletion", "check_method_fits", "dash", "format_default_params", "data_info", "data_kind", "demo_model", "holdout_columns", "method_info", "method_rows", "option_params",
    "param_owners", "people_pool", "resume_minutes", "shown_columns", "validate", "validate_pulse",
    "DEFAULT_RESUME_MINUTES", "PAPER_SEEDS", "parse_methods", "parse_seeds",
]
