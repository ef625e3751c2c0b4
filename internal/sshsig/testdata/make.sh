#!/bin/sh
# Regenerates the fixtures of package sshsig with OpenSSH's ssh-keygen
# (made with OpenSSH_9.2p1 Debian-2+deb12u10). Run from this directory.
set -eu
rm -f ed25519 ed25519.pub rsa rsa.pub ecdsa ecdsa.pub message*.sig
ssh-keygen -q -t ed25519 -N '' -C release@example.com -f ed25519
ssh-keygen -q -t rsa -b 2048 -N '' -C rsa@example.com -f rsa
ssh-keygen -q -t ecdsa -b 256 -N '' -C ecdsa@example.com -f ecdsa
printf 'the bytes of a release\n' > message
for k in ed25519 rsa ecdsa; do
  ssh-keygen -q -Y sign -n murder -f "$k" message
  mv message.sig "message.$k.sig"
done
ssh-keygen -q -Y sign -n git -f ed25519 message
mv message.sig message.git-namespace.sig
{
  echo "# made by make.sh: release@example.com may sign for murder only"
  printf 'release@example.com namespaces="murder" %s\n' "$(cut -d' ' -f1,2 ed25519.pub)"
  printf '"rsa@example.com" %s\n' "$(cut -d' ' -f1,2 rsa.pub)"
  printf 'ecdsa@example.com,ops@example.com valid-after="20200101",valid-before="20990101Z" %s comment here\n' "$(cut -d' ' -f1,2 ecdsa.pub)"
} > allowed_signers
# The private keys are test fixtures, never used anywhere else.
