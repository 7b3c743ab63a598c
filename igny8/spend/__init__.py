"""Spend control (issue 17): the price table, the estimate before a generate, the monthly budget
held atomically while it runs (reserve, settle, release), the 80 % alert and the usage after."""
