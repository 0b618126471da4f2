#!/bin/sh
# checksrc.sh — refuse C functions that have no place in code that touches
# network or file input (STYLE.md "Lengths travel with pointers"):
# strcpy, strcat, sprintf, vsprintf, gets, strtok, atoi, atol, atoll, sscanf.
# Lists every offending line and exits 1 if there is any.
set -eu
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atoll|sscanf)[[:space:]]*\('
if grep -rnE "$banned" --include='*.c' --include='*.h' src tests bench; then
	echo "checksrc: banned functions used (see above)" >&2
	exit 1
fi
echo "checksrc: clean"
