/* a
bracket comment */ if header :is "x" "a\"b\\c" { discard; } # end
if size :under 10k { keep; }
