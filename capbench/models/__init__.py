"""Models capbench builds itself: the embedded tiny MoE used by ``capbench run`` with no config."""
