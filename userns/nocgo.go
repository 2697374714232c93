//go:build !cgo

package userns

// cgoBuild: see dropCarriedCaps.
const cgoBuild = false
