package proxy

// Guard is the seam between the proxy, which knows the wire protocol, and
// the masking layer, which knows SQL meaning. See doc.go.
type Guard interface{}
