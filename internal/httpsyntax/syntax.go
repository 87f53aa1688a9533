package httpsyntax

// tchars marks the bytes of a token (RFC 9110 § 5.6.2 tchar).
var tchars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsTokenByte reports whether c may appear in a token, such as a header
// field name or a method.
func IsTokenByte(c byte) bool { return tchars[c] }

// IsToken reports whether s is a token: not empty, all token bytes.
func IsToken[S string | []byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchars[s[i]] {
			return false
		}
	}
	return true
}

// HasCTL reports whether s holds a control byte other than HTAB, which a
// field value may not (RFC 9110 § 5.5).
func HasCTL[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}
