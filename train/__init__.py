"""Command-line training and evaluation of Signal: python -m train, python -m train.evaluate."""
