# Embeds a text file as a NUL-terminated C array, byte for byte (no escaping to get wrong).
# Usage: cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -DHEADER=certmon/x.h -P embed.cmake
file(READ "${IN}" hexdata HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hexdata}")
file(WRITE "${OUT}.tmp"
     "/* Generated from ${IN} by cmake/embed.cmake: edit that file instead. */\n"
     "#include \"${HEADER}\"\n\n"
     "const char ${NAME}[] = {${bytes}0x00};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
