"""Prompt recipes of the papers, the LLM backends and label-ambiguity resolution."""
from engine.prompts.base import Recipe, RecipeError, get_recipe, recipe_names, register

__all__ = ["Recipe", "RecipeError", "get_recipe", "recipe_names", "register"]
