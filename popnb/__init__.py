"""popnb: predict video popularity from cover and title."""
