// +k8s:deepcopy-gen=package
// +groupName=infer.mindie.io

// Package infer holds the internal (hub) version of the infer.mindie.io API.
// Every served version converts to and from these types; validation and the
// registry work on them only.
package infer
