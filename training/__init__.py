"""Speech-LLM adaptation: term_map SFT data, LoRA fine-tuning, and the term_map ablation.

``rasst train`` (:mod:`training.cli`) mounts the commands; docs/training.md walks
through them. The data builder shapes every user turn with
:func:`server.translator.messages.build_user_turn`, the function the translator serves
with, so training and serving prompts are the same bytes.
"""
