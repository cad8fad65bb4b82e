"""Stage 7, human review: the cases advisors and supervisors decide, their journal, and its fold into the warehouse."""
