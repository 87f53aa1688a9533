//go:build !linux

package ownertemp

// renameNoReplace renames directory from to to, failing with an error
// matching fs.ErrExist if to exists.
func renameNoReplace(from, to string) error {
	return renameChecked(from, to)
}
