"""Understanding a collection: leave-one-out evaluation (`evaluate`) and 2-D maps (`projection`)."""
