"""What every gRPC server and client of remit shares: start-up, health, reflection, errors."""
