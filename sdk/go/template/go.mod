module {{name}}

go 1.24

require projector.dev/sdk v0.0.0

// sdk/ is a copy of the Projector Go SDK.
replace projector.dev/sdk => ./sdk
