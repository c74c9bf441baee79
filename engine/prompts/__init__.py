"""Prompt recipes of the papers, the LLM backends and label-ambiguity resolution.

Importing this package registers every recipe (cheaply: no network, no model loading):

========================  ==========================================================  =========
``c`` ``c_hc`` ``c_dc`` ``multiple`` ``multiple_different`` ``c_hc_inside_b``
``s1_mix``                seed 002 §4-5 (Fake it till you make it)                     fakeit
``complex``               seed 000 A.5 (Will large-scale generative models ...)        complex
``cd`` ``sd`` ``disambiguated``  seed 003 §3.1-3.2 (Diversify, don't fine-tune)       diversify
``clip_templates`` ``a_photo_of`` ``rendition`` ``template``  seed 004 Table 8/4      templates
========================  ==========================================================  =========
"""
from engine.prompts import complex, diversify, fakeit, templates  # noqa: F401  (registration)
from engine.prompts.base import (Recipe, RecipeError, accepted_options, build_recipe, get_recipe,
                                 recipe_names, register)

__all__ = ["Recipe", "RecipeError", "accepted_options", "build_recipe", "get_recipe",
           "recipe_names", "register"]
