"""Stage 9, outcomes: repayment results of the applications granted, and back-testing every model version on them."""
