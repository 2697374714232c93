//go:build cgo

package userns

// cgoBuild: see dropCarriedCaps. Built this way, init is always started by
// the holder.
const cgoBuild = true
