//go:build tools

// Package tools records the build-only dependency so `go mod tidy` keeps it.
package tools

import _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
