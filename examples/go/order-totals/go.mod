module projector.dev/examples/order-totals

go 1.24

require projector.dev/sdk v0.0.0

replace projector.dev/sdk => ../../../sdk/go
