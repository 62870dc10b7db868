module projector.dev/sdk

go 1.24
