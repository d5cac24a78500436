"""Live rooms: viewers, watch time, engagement and attributed orders per room."""
