"""Training of the bundled demo model, its LoRA, and the pixel judge that evaluates them."""
