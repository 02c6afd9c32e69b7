require ["include","variables","fileinto"];
global "folder";
set "folder" "Included";
include :personal "common";
include :global "spam";
include :optional "missing";
include :once :personal "common";
if string :is "${folder}" "changed" { fileinto "global-changed"; }
