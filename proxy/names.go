package proxy

import "iter"

// names holds a masked session's values by statement or portal name. The
// unnamed statement and portal ("") live in a field of their own: most
// extended-protocol traffic (libpq's PQexecParams, pgbench -M extended,
// pgJDBC before its prepare threshold) uses only those, and a field costs
// no hashing and touches no memory the session does not already hold. The
// map is made on the first named entry, so a session that names nothing
// holds none.
type names[V any] struct {
	unnamed    V
	hasUnnamed bool
	named      map[string]V
}

// get returns the value of name and whether there is one.
func (n *names[V]) get(name string) (V, bool) {
	if name == "" {
		return n.unnamed, n.hasUnnamed
	}
	v, ok := n.named[name]
	return v, ok
}

// at returns the value of name, or the zero value.
func (n *names[V]) at(name string) V {
	v, _ := n.get(name)
	return v
}

func (n *names[V]) set(name string, v V) {
	if name == "" {
		n.unnamed, n.hasUnnamed = v, true
		return
	}
	if n.named == nil {
		n.named = map[string]V{}
	}
	n.named[name] = v
}

func (n *names[V]) del(name string) {
	if name == "" {
		var zero V
		n.unnamed, n.hasUnnamed = zero, false
		return
	}
	delete(n.named, name)
}

func (n *names[V]) clear() {
	n.del("")
	clear(n.named)
}

// all yields every name and its value; set may be called for a yielded
// name meanwhile.
func (n *names[V]) all() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if n.hasUnnamed && !yield("", n.unnamed) {
			return
		}
		for name, v := range n.named {
			if !yield(name, v) {
				return
			}
		}
	}
}
