package proxy

// Code gives a clientError's SQLSTATE to codeOf, so that a guard whose
// session setup failed because the upstream went away (its exec returned
// the clientError) reports 08006, not the 42501 of a refusal.
func (e *clientError) Code() string { return e.code }
